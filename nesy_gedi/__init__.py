"""nesy_gedi: neuro-symbolic learning whose symbols are grounded correctly (DeepProbLog + GEDI)."""

__version__ = "0.1.0"
