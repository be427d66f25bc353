"""Generated from proto/herald: do not edit, run `make gen`."""
