"""``python -m nlp_transfer.compare JOB.json``: one run of a comparison, in the child process ``compare`` started."""

import sys

from nlp_transfer.compare.child import child_main

raise SystemExit(child_main(sys.argv[1:]))
