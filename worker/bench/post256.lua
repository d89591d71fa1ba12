-- wrk script: POST a ~256-byte JSON body with a fresh Idempotency-Key, like one record of
-- courier-worker's traffic.
local counter = 0
local pad = string.rep("x", 200)

request = function()
  counter = counter + 1
  local body = string.format('{"id":%d,"email":"user%d@example.com","pad":"%s"}', counter, counter, pad)
  return wrk.format("POST", "/ingest", { ["Idempotency-Key"] = "bench-" .. counter,
                                         ["Content-Type"] = "application/json" }, body)
end
