"""What a run's result means: metrics, cluster naming and its check, shortcut counts, sample quality and the
report a person reads."""
