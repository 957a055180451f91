# The long reliability run (make stress; scripts/stress.sh sets the sizes
# through the environment): the same scenarios as make check, longer, and
# fault injection at every fault point. One KTAP suite, vslice_stress.
. /guest/ktap.sh
. /guest/tests/lifecycle.sh
. /guest/tests/reliability.sh
run_reliability_suite vslice_stress
