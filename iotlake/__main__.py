from iotlake.cli import app

app(prog_name="iotlake")
