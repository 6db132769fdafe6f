"""Development tooling that is not part of the installed package: run from the repository root.

app_harness       drives the app in a real browser; shared by tests/test_e2e_browser.py and benchmarks/bench_app.py
make_submission   builds the submission zip (`make submission`)
"""
