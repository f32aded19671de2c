"""One module per pattern: each exercise's check, proving the technique with the lesson's invariants."""
