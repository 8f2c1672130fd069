"""Data quality on the real table: which checks a product has and the SQL each runs
(``plan``, pure), running them read-only with a time limit (``run``), and the bounded
report a check pod leaves for the operator (``report``)."""
