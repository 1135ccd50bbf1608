"""The local AWS emulator `make run` and the demo start: moto, with what moto lacks put back."""
