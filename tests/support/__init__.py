"""Helpers shared by the tests and the benchmarks (a faulty AWS, a running vending stack)."""
