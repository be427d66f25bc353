"""Generated from proto/herald/v1: do not edit, run `make gen`."""
