# Source this to build and test by hand like the Makefile does: `. scripts/env.sh`
_gunlearn_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export VIRTUAL_ENV="$_gunlearn_root/.venv"
export PATH="$VIRTUAL_ENV/bin:$PATH"
export LIBTORCH_USE_PYTORCH=1
export GUNLEARN_TEST_THREADS="${GUNLEARN_TEST_THREADS:-2}"
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-passive}"
