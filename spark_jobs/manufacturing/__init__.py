"""IoT time-series anomaly detection: sensor and inspection CSVs -> Auto Loader -> Delta."""
