# The two commands of a fresh machine: `make demo` and `make test`.
.PHONY: demo test lint crds bench fuzz faults cluster-up cluster-down

demo: ## build everything, start the local cluster, MiniDFS and the partner simulator, deliver the samples
	e2e/scripts/demo.sh

test: ## every test, against the real local cluster, MiniDFS and the partner simulator
	e2e/scripts/test.sh

lint: ## clippy -D warnings, rustfmt, cargo deny (licenses, sources, duplicate versions; advisories when the database is here)
	e2e/scripts/lint.sh

crds: ## regenerate crds/generated/*.yaml and docs/api.md from the API types
	cargo run -q -p courier-api --bin crdgen

fuzz: ## every cargo-fuzz target under libFuzzer (nightly), FUZZ_SECONDS each (60 by default)
	e2e/scripts/fuzz.sh

faults: ## the long fault suite's partner and bad-data rows (40,000 records per fault, a 60 s outage); table in docs/faults.md
	COURIER_FAULTS_LONG=1 COURIER_FAULTS_DOC=1 cargo test -p courier-worker --test integration faults_partner:: -- --nocapture

bench: ## benchmarks (results under docs/)
	e2e/bench/simulator.sh
	worker/bench/worker.sh
	worker/bench/protocols.sh
	worker/bench/hdfs.sh
	e2e/bench/peers.sh
	e2e/bench/workers.sh
	cargo run --locked --release -p courier-operator --example fleet_bench -- --out docs/benchmarks-fleet.md

cluster-up:
	e2e/cluster/cluster.sh up

cluster-down:
	e2e/cluster/cluster.sh down
