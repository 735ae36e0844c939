//! The Dataverse Web API client: one retry policy for every request, metadata (with a disk
//! cache), query building, the page stream that follows `@odata.nextLink`, and writes.
