# Convenience aliases for the two quick-start scripts (and the translations' script).
.PHONY: run test bench catalogues
run:
	sh scripts/demo.sh
test:
	sh scripts/test.sh
bench:
	.venv/bin/python -m bench.relay
catalogues:  # #21: extract new page texts, merge them into every language, check all translated
	sh scripts/catalogues.sh extract && sh scripts/catalogues.sh update && sh scripts/catalogues.sh check
