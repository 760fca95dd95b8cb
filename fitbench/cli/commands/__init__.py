"""The `fitbench` commands, one module each (as asv has one Command per file): `add_parser` declares
its options, `run` carries it out and returns the exit status."""
