"""kop benchmark harness: systems under test, load drivers, process monitoring.

Entry points are ``bench/run.py`` (drive the systems) and ``bench/report.py`` (write the report).
"""

import os

# The servers under test start as a wheel install runs them: with their Python compiled to
# bytecode (pip compiles at install). A development checkout gets the same on its first start,
# unless PYTHONDONTWRITEBYTECODE is set (as on the team's machines): then every kop start would
# also compile kop's modules from source (~20 ms of CPU, counted in its start-up).
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
