"""kop benchmark harness: systems under test, load drivers, process monitoring.

Entry points are ``bench/run.py`` (drive the systems) and ``bench/report.py`` (write the report).
"""
