"""The health record database: ORM rows, engine, migrations runner and repositories."""
