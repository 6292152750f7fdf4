"""Energy meters: ``rapl`` (powercap), ``nvml`` (GPU), ``estimate`` (modelled), and their composite."""
