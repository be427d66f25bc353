"""The shared runtime of every Herald process: settings, logging, gRPC bootstrap,
health, graceful shutdown, PostgreSQL, Redis and RabbitMQ clients, metrics."""
