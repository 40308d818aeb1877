"""What a client tells the outside: hook records and their dispatch, OpenTelemetry."""
