//! What every handler gets: the database pool. Passed explicitly as axum state.

#[derive(Clone)]
pub struct AppState {
    pub pool: deadpool_postgres::Pool,
}
