from allot.notify.service import SPEC
from allot.runtime.service import run

run(SPEC)
