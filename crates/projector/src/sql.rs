//! Statements whose parameters are declared where they are bound: each column of an `unnest` names
//! itself, its array type and its values together, and the `$n` placeholders are numbered as they are
//! bound, so that adding a column cannot misalign the others.

use crate::error::ProjectionError;
use sqlx::postgres::PgArguments;
use sqlx::{Arguments, Encode, Postgres, Type};

/// `name` as a quoted SQL identifier.
pub(crate) fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The parameters of one statement, in the order they are bound.
#[derive(Default)]
pub(crate) struct Params {
    args: PgArguments,
    /// The first value that could not be encoded, reported by [`Params::into_arguments`].
    failed: Option<sqlx::error::BoxDynError>,
}

impl Params {
    /// Binds `value` and returns its placeholder, cast to `sql_type`.
    pub(crate) fn bind<'v, T>(&mut self, sql_type: &str, value: T) -> String
    where
        T: Encode<'v, Postgres> + Type<Postgres> + 'v,
    {
        if let Err(error) = Arguments::<'v>::add(&mut self.args, value) {
            self.failed.get_or_insert(error);
        }
        format!("${}::{sql_type}", Arguments::<'v>::len(&self.args))
    }

    /// Starts the columns of one `unnest` over `rows`, one array element per row.
    pub(crate) fn unnest<'r, R>(&mut self, rows: &'r [R]) -> Unnest<'_, 'r, R> {
        Unnest {
            params: self,
            rows,
            names: Vec::new(),
            arrays: Vec::new(),
        }
    }

    pub(crate) fn into_arguments(self) -> Result<PgArguments, ProjectionError> {
        match self.failed {
            Some(error) => Err(ProjectionError::Database(sqlx::Error::Encode(error))),
            None => Ok(self.args),
        }
    }
}

/// The columns of one `unnest(…) as alias(…)`, each bound as it is declared.
pub(crate) struct Unnest<'p, 'r, R> {
    params: &'p mut Params,
    rows: &'r [R],
    names: Vec<&'static str>,
    arrays: Vec<String>,
}

impl<'r, R> Unnest<'_, 'r, R> {
    /// A column `name` holding `value` of each row, bound as `array_type` (e.g. `text[]`, or
    /// `text[]::numeric[]` for a number sent as text).
    pub(crate) fn column<'v, T>(
        mut self,
        name: &'static str,
        array_type: &str,
        value: impl Fn(&'r R) -> T,
    ) -> Self
    where
        Vec<T>: Encode<'v, Postgres> + Type<Postgres> + 'v,
    {
        let array: Vec<T> = self.rows.iter().map(value).collect();
        self.names.push(name);
        self.arrays.push(self.params.bind(array_type, array));
        self
    }

    /// The table the columns make, aliased `alias`.
    pub(crate) fn table(self, alias: &str) -> Table {
        Table {
            columns: self.names.join(", "),
            from: format!(
                "unnest({}) as {alias}({})",
                self.arrays.join(", "),
                self.names.join(", ")
            ),
        }
    }
}

/// An `unnest` ready to be written into a statement.
pub(crate) struct Table {
    /// The column names, in order: the insert's column list and the select's.
    pub(crate) columns: String,
    /// `unnest(…) as alias(…)`.
    pub(crate) from: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_follow_the_order_columns_are_declared_in() {
        let mut params = Params::default();
        let projection = params.bind("text", "ledger");
        let rows = [("a", 1)];
        let table = params
            .unnest(&rows)
            .column("ledger_id", "text[]", |r| r.0)
            .column("amount", "text[]::numeric[]", |r| r.1.to_string())
            .table("t");
        assert_eq!(projection, "$1::text");
        assert_eq!(table.columns, "ledger_id, amount");
        assert_eq!(
            table.from,
            "unnest($2::text[], $3::text[]::numeric[]) as t(ledger_id, amount)"
        );
        assert!(params.into_arguments().is_ok());
    }
}
