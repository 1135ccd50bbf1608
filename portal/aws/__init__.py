"""The only package that talks to AWS. Plain values in, dataclasses out, its own exceptions."""
