"""points.py OUT - real positions for the HTTP benchmarks: every pickup and
dropoff of the NYC driver's 682 trips and of the Chicago taxi trips, one
"lon lat" per line (about 30,000 points)."""
import csv
import os
import sys

DATA = os.environ.get("DATA", "../shared/data")
out = []
with open(os.path.join(DATA, "trips/nyc_taxi_one_driver_2013-01.csv")) as f:
    for row in csv.reader(f):
        for lon, lat in ((row[10], row[11]), (row[12], row[13])):
            if lon and lat and float(lon) != 0:
                out.append((float(lon), float(lat)))
with open(os.path.join(DATA, "trips/chicago_taxi_2013-2016.csv")) as f:
    for row in csv.DictReader(f):
        for lon, lat in (("pickup_longitude", "pickup_latitude"),
                         ("dropoff_longitude", "dropoff_latitude")):
            if row[lon] and row[lat]:
                out.append((float(row[lon]), float(row[lat])))
with open(sys.argv[1], "w") as f:
    for lon, lat in out:
        f.write("%.6f %.6f\n" % (lon, lat))
