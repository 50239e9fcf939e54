"""The phone page of the seismograph and the gateway that forwards its events to the brokers.

`server` is the HTTP layer (and `serve`, what `iotlake gateway` runs); `ingest` turns one
request body into forwarded events and a reply, with `validation`, `limits` and `forwarding`.
"""
