"""DLT Twitter demo: post files -> Auto Loader bronze -> English silver -> sentiment gold."""
