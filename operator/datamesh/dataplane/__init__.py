"""The data plane: what runs beside the products' data (pipeline runs, and later the
warehouse adapter and quality checks). Imports only ``api`` and ``governance``."""
