"""The local stack (real PostgreSQL and Mosquitto on free ports) and the services harness (start
a `motus` service, wait until it is ready, read its metrics, stop it), for the demo, the
benchmarks and the tests alike. Nothing of the network's services imports it."""
