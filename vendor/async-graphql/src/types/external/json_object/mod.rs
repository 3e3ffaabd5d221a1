mod btreemap;
mod hashmap;
