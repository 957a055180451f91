# The device-death run of make check (its own VM: the second device's
# hw-sim is killed for good). Host half: scripts/tests/host-death.sh.
. /guest/ktap.sh
. /guest/tests/lifecycle.sh
. /guest/tests/faults.sh
run_device_death_suite
