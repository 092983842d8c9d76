"""Data contracts: suites, GX evaluation on Spark, routing valid and rejected rows, reports, drafts."""
