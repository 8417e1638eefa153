//! Fault injection against real `synod server` processes: a nemesis on a seeded schedule,
//! clients that record a history, and a linearizability check of that history.
