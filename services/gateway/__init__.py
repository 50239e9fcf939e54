"""The phone page of the seismograph and the gateway that forwards its events to the brokers."""
