"""Airflow operators: parse parameters, wire hooks and the run, report."""
