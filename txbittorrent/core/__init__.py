"""The sans-I/O core: protocol and data rules with no Twisted, no sockets,
no files, no clock reads and no global randomness.  Everything here is pure
and testable with plain values; the modules one level up adapt it to Twisted."""
