"""The Lakeflow Declarative Pipelines API and its loaders, as iotlake runs them."""
