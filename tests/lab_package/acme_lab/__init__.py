"""The ACME lab's builders and tables for neurofit (a test fixture standing for a lab package)."""
