# Convenience aliases for the two quick-start scripts.
.PHONY: run test bench
run:
	sh scripts/demo.sh
test:
	sh scripts/test.sh
bench:
	.venv/bin/python -m bench.relay
