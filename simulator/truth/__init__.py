"""truth: measured data as the referee — trace reading and validation, calibration, importers of other tools' measurements, the Vidur export, published anchors."""
