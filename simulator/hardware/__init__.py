"""hardware: the device spec (schema, loading by id, alias or path; every number with its source) and the calibration file's schema and how a spec takes it. Imports only core."""
