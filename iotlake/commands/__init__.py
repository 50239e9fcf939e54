"""The `iotlake` commands, one module per group; `iotlake.cli` puts them on the root app."""
