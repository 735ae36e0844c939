"""The Spark data source in a local Spark 4 (``pyspark`` from PyPI, Debian's OpenJDK): a table
read through ``spark.read.format("d365")`` in several partitions equals the emulator's rows.
Skipped when pyspark or Java is missing, unless ``D365_SPARK_TEST=require`` (as in CI)."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from typing import Any

import pytest

import d365

if os.environ.get("D365_SPARK_TEST") != "require":
    pytest.importorskip("pyspark")
    if shutil.which("java") is None:
        pytest.skip("no java on PATH (Spark needs a JVM)", allow_module_level=True)


@pytest.fixture(scope="module")
def spark() -> Iterator[Any]:
    from pyspark.sql import SparkSession

    # Spark's Python workers run this interpreter (with d365 and pyarrow), not the system's.
    os.environ["PYSPARK_PYTHON"] = sys.executable
    session = (
        SparkSession.builder.master("local[2]")
        .appName("d365-test")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "2")
        .getOrCreate()
    )
    yield session
    session.stop()


def test_spark_reads_a_table_in_parallel_partitions(spark: Any, emulator: d365.Emulator) -> None:
    from d365.spark import D365DataSource

    spark.dataSource.register(D365DataSource)
    df = (
        spark.read.format("d365")
        .option("connection", emulator.connection_string)
        .option("table", "contact")
        .option("unitRows", "60")
        .load()
    )
    assert df.rdd.getNumPartitions() >= 3
    assert dict(df.dtypes)["createdon"] == "timestamp"
    got = sorted(
        (r.contactid.lower(), r.lastname or "") for r in df.select("contactid", "lastname").collect()
    )
    with d365.connect(emulator.connection_string) as conn:
        want = sorted(
            (str(i).lower(), n or "") for i, n in conn.execute("SELECT contactid, lastname FROM contact")
        )
        total = conn.execute("SELECT sum(revenue) FROM account").fetchone()[0]
    assert got == want

    accounts = (
        spark.read.format("d365")
        .option("connection", emulator.connection_string)
        .option("table", "account")
        .load()
    )
    assert accounts.selectExpr("sum(revenue)").collect()[0][0] == total

    with pytest.raises(Exception, match="needs a connection"):
        spark.read.format("d365").option("table", "account").load().count()
