"""How the delivery providers are doing, as the gateway can see it: sends, failures and
latency from the delivery trail, circuit breakers from the workers' metrics."""
