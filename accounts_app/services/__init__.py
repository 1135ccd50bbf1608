"""Everything that writes: each function takes keyword arguments, an `actor`, and audits itself."""
