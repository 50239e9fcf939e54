package iotlake.catalog;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.util.Arrays;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.stream.Stream;

import org.apache.hadoop.fs.FileStatus;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;

import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.catalyst.analysis.NamespaceAlreadyExistsException;
import org.apache.spark.sql.catalyst.analysis.NoSuchNamespaceException;
import org.apache.spark.sql.catalyst.analysis.NoSuchTableException;
import org.apache.spark.sql.catalyst.analysis.NonEmptyNamespaceException;
import org.apache.spark.sql.catalyst.analysis.TableAlreadyExistsException;
import org.apache.spark.sql.connector.catalog.CatalogManager;
import org.apache.spark.sql.connector.catalog.CatalogPlugin;
import org.apache.spark.sql.connector.catalog.Changelog;
import org.apache.spark.sql.connector.catalog.ChangelogContext;
import org.apache.spark.sql.connector.catalog.Column;
import org.apache.spark.sql.connector.catalog.Identifier;
import org.apache.spark.sql.connector.catalog.NamespaceChange;
import org.apache.spark.sql.connector.catalog.StagedTable;
import org.apache.spark.sql.connector.catalog.StagingTableCatalog;
import org.apache.spark.sql.connector.catalog.SupportsNamespaces;
import org.apache.spark.sql.connector.catalog.Table;
import org.apache.spark.sql.connector.catalog.TableCatalog;
import org.apache.spark.sql.connector.catalog.TableCatalogCapability;
import org.apache.spark.sql.connector.catalog.TableChange;
import org.apache.spark.sql.connector.catalog.TableInfo;
import org.apache.spark.sql.connector.catalog.TableSummary;
import org.apache.spark.sql.connector.catalog.TableWritePrivilege;
import org.apache.spark.sql.connector.expressions.Transform;
import org.apache.spark.sql.connector.metric.CustomMetric;
import org.apache.spark.sql.util.CaseInsensitiveStringMap;

/**
 * A Databricks catalog name on open-source Spark: {@code C.S.T} is the session catalog's
 * {@code C__S.T}.
 *
 * <p>Spark's session catalog ({@code spark_catalog}, Delta's {@code DeltaCatalog} here) knows
 * only database.table, while Databricks code names tables catalog.schema.table. Registered as
 * {@code spark.sql.catalog.C = iotlake.catalog.LakeCatalog} (at startup or later with
 * {@code spark.conf.set}: Spark loads catalogs on first use), this catalog renames and forwards
 * every call to the session catalog, so each table is one Delta table with one location and
 * one log, readable by either name, and every Delta behaviour stays Delta's own.
 *
 * <p>The lake names its own tables: a schema's database is located at a pipeline's folder of
 * the lake, and a Delta table in that folder ({@code <folder>/<table>/_delta_log}) is
 * registered under its folder's name the first time a query looks it up, so a session
 * starts without registering every table an earlier run wrote. A name dropped in this session
 * stays dropped (its files stay) until a table is created under it again.
 */
public final class LakeCatalog implements StagingTableCatalog, SupportsNamespaces {
  private static final String SEPARATOR = "__";

  private static final String DELTA_LOG = "_delta_log";

  private String name;
  private volatile CatalogPlugin delegate;
  private final Set<Identifier> dropped = ConcurrentHashMap.newKeySet();

  // ---- Plugin: the name Spark registered us under is the prefix of our databases; the
  // session catalog is looked up on first use, since Spark may still be building it when it
  // initializes us.

  @Override
  public void initialize(String name, CaseInsensitiveStringMap options) {
    this.name = name;
  }

  @Override
  public String name() {
    return name;
  }

  /** Databricks' default schema: {@code USE CATALOG C} then {@code t} names {@code C.default.t}. */
  @Override
  public String[] defaultNamespace() {
    return new String[] {"default"};
  }

  private CatalogPlugin delegate() {
    if (delegate == null) {
      delegate =
          SparkSession.active()
              .sessionState()
              .catalogManager()
              .catalog(CatalogManager.SESSION_CATALOG_NAME());
    }
    return delegate;
  }

  private TableCatalog tables() {
    return (TableCatalog) delegate();
  }

  private SupportsNamespaces namespaces() {
    return (SupportsNamespaces) delegate();
  }

  private StagingTableCatalog staging() {
    if (delegate() instanceof StagingTableCatalog staging) {
      return staging;
    }
    throw new UnsupportedOperationException(
        "catalog " + name + ": CREATE/REPLACE TABLE ... AS SELECT needs a session catalog that"
            + " stages tables (Delta's DeltaCatalog); spark_catalog is "
            + delegate().getClass().getName());
  }

  // ---- Names: one schema level maps onto one session database; anything else is an error
  // naming the expected shape rather than a silent lookup of the wrong database.

  private String prefix() {
    return name.toLowerCase(Locale.ROOT) + SEPARATOR;
  }

  private String[] toSession(String[] namespace) {
    if (namespace.length != 1) {
      throw new IllegalArgumentException(
          "catalog " + name + " holds schemas one level deep (" + name + ".schema.table); got"
              + " namespace " + Arrays.toString(namespace) + " (" + namespace.length
              + " levels)");
    }
    return new String[] {name + SEPARATOR + namespace[0]};
  }

  private Identifier toSession(Identifier ident) {
    return Identifier.of(toSession(ident.namespace()), ident.name());
  }

  // ---- Namespaces: this catalog's schemas are the session databases named C__<schema>.

  @Override
  public String[][] listNamespaces() throws NoSuchNamespaceException {
    return Arrays.stream(namespaces().listNamespaces())
        .filter(ns -> ns.length == 1 && ns[0].toLowerCase(Locale.ROOT).startsWith(prefix()))
        .map(ns -> new String[] {ns[0].substring(prefix().length())})
        .toArray(String[][]::new);
  }

  @Override
  public String[][] listNamespaces(String[] namespace) throws NoSuchNamespaceException {
    if (namespace.length == 0) {
      return listNamespaces();
    }
    return namespaces().listNamespaces(toSession(namespace));
  }

  @Override
  public boolean namespaceExists(String[] namespace) {
    return namespaces().namespaceExists(toSession(namespace));
  }

  @Override
  public Map<String, String> loadNamespaceMetadata(String[] namespace)
      throws NoSuchNamespaceException {
    return namespaces().loadNamespaceMetadata(toSession(namespace));
  }

  @Override
  public void createNamespace(String[] namespace, Map<String, String> metadata)
      throws NamespaceAlreadyExistsException {
    namespaces().createNamespace(toSession(namespace), metadata);
  }

  @Override
  public void alterNamespace(String[] namespace, NamespaceChange... changes)
      throws NoSuchNamespaceException {
    namespaces().alterNamespace(toSession(namespace), changes);
  }

  @Override
  public boolean dropNamespace(String[] namespace, boolean cascade)
      throws NoSuchNamespaceException, NonEmptyNamespaceException {
    return namespaces().dropNamespace(toSession(namespace), cascade);
  }

  // ---- Tables: every call renamed and forwarded, defaults included, so the session catalog's
  // own overrides (Delta's time travel, write privileges, column defaults) answer, not
  // TableCatalog's fallbacks. Of the deprecated createTable overloads only the Column[] one is
  // still called (by Delta's CLONE); Spark itself creates through TableInfo. Listed names come
  // back under the schema the caller asked for; the session catalog lists the session's
  // temporary views too (no namespace): not ours.

  @Override
  public Set<TableCatalogCapability> capabilities() {
    return tables().capabilities();
  }

  @Override
  public Identifier[] listTables(String[] namespace) throws NoSuchNamespaceException {
    registerLakeTables(namespace);
    return Arrays.stream(tables().listTables(toSession(namespace)))
        .filter(ident -> ident.namespace().length == 1)
        .map(ident -> Identifier.of(namespace, ident.name()))
        .toArray(Identifier[]::new);
  }

  @Override
  public TableSummary[] listTableSummaries(String[] namespace)
      throws NoSuchNamespaceException, NoSuchTableException {
    registerLakeTables(namespace);
    return Arrays.stream(tables().listTableSummaries(toSession(namespace)))
        .filter(s -> s.identifier().namespace().length == 1)
        .map(s -> TableSummary.of(Identifier.of(namespace, s.identifier().name()), s.tableType()))
        .toArray(TableSummary[]::new);
  }

  @Override
  public Table loadTable(Identifier ident) throws NoSuchTableException {
    return tables().loadTable(known(ident));
  }

  @Override
  public Table loadTable(Identifier ident, Set<TableWritePrivilege> privileges)
      throws NoSuchTableException {
    return tables().loadTable(known(ident), privileges);
  }

  @Override
  public Table loadTable(Identifier ident, String version) throws NoSuchTableException {
    return tables().loadTable(known(ident), version);
  }

  @Override
  public Table loadTable(Identifier ident, long timestamp) throws NoSuchTableException {
    return tables().loadTable(known(ident), timestamp);
  }

  @Override
  public Changelog loadChangelog(
      Identifier ident, ChangelogContext context, CaseInsensitiveStringMap options)
      throws NoSuchTableException {
    return tables().loadChangelog(known(ident), context, options);
  }

  @Override
  public void invalidateTable(Identifier ident) {
    tables().invalidateTable(toSession(ident));
  }

  @Override
  public boolean tableExists(Identifier ident) {
    return tables().tableExists(known(ident));
  }

  @Override
  @SuppressWarnings("deprecation")
  public Table createTable(
      Identifier ident, Column[] columns, Transform[] partitions, Map<String, String> properties)
      throws TableAlreadyExistsException, NoSuchNamespaceException {
    dropped.remove(toSession(ident));
    return tables().createTable(toSession(ident), columns, partitions, properties);
  }

  @Override
  public Table createTable(Identifier ident, TableInfo info)
      throws TableAlreadyExistsException, NoSuchNamespaceException {
    dropped.remove(toSession(ident));
    return tables().createTable(toSession(ident), info);
  }

  @Override
  public Table createTableLike(Identifier ident, TableInfo info, Table source)
      throws TableAlreadyExistsException, NoSuchNamespaceException {
    dropped.remove(toSession(ident));
    return tables().createTableLike(toSession(ident), info, source);
  }

  @Override
  public boolean useNullableQuerySchema() {
    return tables().useNullableQuerySchema();
  }

  @Override
  public Table alterTable(Identifier ident, TableChange... changes) throws NoSuchTableException {
    return tables().alterTable(toSession(ident), changes);
  }

  @Override
  public boolean dropTable(Identifier ident) {
    Identifier session = known(ident);
    dropped.add(session);
    return tables().dropTable(session);
  }

  @Override
  public boolean purgeTable(Identifier ident) {
    Identifier session = known(ident);
    dropped.add(session);
    return tables().purgeTable(session);
  }

  @Override
  public void renameTable(Identifier from, Identifier to)
      throws NoSuchTableException, TableAlreadyExistsException {
    Identifier source = known(from);
    dropped.add(source);
    dropped.remove(toSession(to));
    tables().renameTable(source, toSession(to));
  }

  // ---- The lake's tables, registered on first lookup (see the class comment).

  /** The session catalog's name of a table, registered first if only the lake has it yet. */
  private Identifier known(Identifier ident) {
    Identifier session = toSession(ident);
    if (!dropped.contains(session) && !tables().tableExists(session)) {
      lakeTable(session).ifPresent(location -> register(session, location));
    }
    return session;
  }

  /** Every Delta table in the schema database's folder, registered: a listing names them. */
  private void registerLakeTables(String[] namespace) {
    Optional<Path> folder = folder(toSession(namespace));
    if (folder.isEmpty()) {
      return;
    }
    try {
      FileSystem filesystem = folder.get().getFileSystem(hadoopConf());
      if (!filesystem.exists(folder.get())) {
        return;
      }
      for (FileStatus entry : filesystem.listStatus(folder.get())) {
        String table = entry.getPath().getName();
        if (entry.isDirectory() && !table.startsWith("_")) {
          known(Identifier.of(namespace, table));
        }
      }
    } catch (IOException e) {
      throw new UncheckedIOException("catalog " + name + ": cannot list " + folder.get(), e);
    }
  }

  /** The folder a schema database is located at, if the database exists and has one. */
  private Optional<Path> folder(String[] sessionNamespace) {
    try {
      String location = namespaces().loadNamespaceMetadata(sessionNamespace)
          .get(SupportsNamespaces.PROP_LOCATION);
      return Optional.ofNullable(location).map(Path::new);
    } catch (NoSuchNamespaceException e) {
      return Optional.empty();
    }
  }

  /** The Delta table under the schema database's folder with this name, if there is one. */
  private Optional<Path> lakeTable(Identifier session) {
    Optional<Path> folder = folder(session.namespace());
    if (folder.isEmpty()) {
      return Optional.empty();
    }
    Path table = new Path(folder.get(), session.name());
    try {
      FileSystem filesystem = table.getFileSystem(hadoopConf());
      return filesystem.exists(new Path(table, DELTA_LOG)) ? Optional.of(table) : Optional.empty();
    } catch (IOException e) {
      throw new UncheckedIOException("catalog " + name + ": cannot look for " + table, e);
    }
  }

  /** Name the lake's table in the session catalog, as CREATE TABLE ... LOCATION does. */
  private void register(Identifier session, Path location) {
    String table = Stream.of(CatalogManager.SESSION_CATALOG_NAME(), session.namespace()[0],
            session.name())
        .map(part -> "`" + part.replace("`", "``") + "`")
        .reduce((left, right) -> left + "." + right)
        .orElseThrow();
    String where = location.toString().replace("\\", "\\\\").replace("'", "\\'");
    SparkSession.active()
        .sql("CREATE TABLE IF NOT EXISTS " + table + " USING delta LOCATION '" + where + "'");
  }

  private static org.apache.hadoop.conf.Configuration hadoopConf() {
    return SparkSession.active().sessionState().newHadoopConf();
  }

  // ---- Staging: CTAS, RTAS and saveAsTable's overwrite are atomic in Delta because Delta
  // stages them; forwarding keeps that (Spark picks the staged plan when we are one). Spark
  // stages through TableInfo only; the deprecated schema overloads are left to Spark's
  // defaults, which end in its "must override" error.

  @Override
  public StagedTable stageCreate(Identifier ident, TableInfo info)
      throws TableAlreadyExistsException, NoSuchNamespaceException {
    return staging().stageCreate(toSession(ident), info);
  }

  @Override
  public StagedTable stageReplace(Identifier ident, TableInfo info)
      throws NoSuchNamespaceException, NoSuchTableException {
    return staging().stageReplace(toSession(ident), info);
  }

  @Override
  public StagedTable stageCreateOrReplace(Identifier ident, TableInfo info)
      throws NoSuchNamespaceException {
    return staging().stageCreateOrReplace(toSession(ident), info);
  }

  @Override
  public CustomMetric[] supportedCustomMetrics() {
    return delegate() instanceof StagingTableCatalog staging
        ? staging.supportedCustomMetrics()
        : new CustomMetric[0];
  }
}
