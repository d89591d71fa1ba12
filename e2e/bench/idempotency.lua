-- wrk script: every request carries a fresh Idempotency-Key, like Courier's
-- one-request-per-record traffic, so the simulator's ledger does real work.
local prefix = string.format("bench-%d-%d", os.time(), math.random(1, 1000000000))
local counter = 0

request = function()
  counter = counter + 1
  return wrk.format("POST", nil, { ["Idempotency-Key"] = prefix .. "-" .. counter,
                                   ["Content-Type"] = "application/json" }, '{"record":1}')
end
