"""`make load`: Locust learners holding the lab's WebSocket and sending commands, against `make run` and
`make cluster`, then an exactness check of the store (bench/load/README.md)."""
