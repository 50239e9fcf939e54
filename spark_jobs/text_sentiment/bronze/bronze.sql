-- `bronze`: every post as it landed, all of its fields (Twitter-DataFlow.sql).
-- The hinted columns are the ones the tables read: with them the pipeline starts before the
-- first file lands; every other field of a post joins by schema evolution when it appears.
CREATE OR REFRESH STREAMING TABLE bronze (
  CONSTRAINT `text present` EXPECT (text IS NOT NULL)
)
COMMENT "Raw posts ingested from the landing volume with Auto Loader"
AS SELECT * FROM cloud_files(
  "${landing}", "json",
  map("cloudFiles.schemaHints", "id bigint, geo string, lang string, text string")
);
