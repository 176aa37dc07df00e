/*  cli_table.h: how the CLI prints what a service returned.

    A table: string cells under a header, printed with columns aligned
    (two spaces between, the last column unpadded), the header even when
    there are no rows. A list: items (protobuf messages) printed as such a
    table, one row per item, or with --json as a JSON array of the items
    (an object for one item: get, create). Every command prints through
    here, so tables and JSON look the same across commands.
*/
#ifndef CLI_TABLE_H_INCLUDED
#define CLI_TABLE_H_INCLUDED

#include "cli.h"
#include <protobuf-c/protobuf-c.h>

typedef struct _cli_table_t cli_table_t;

//  A table with these column titles (borrowed: static strings).
cli_table_t *
    cli_table_new (const char *const *header, size_t columns);

void
    cli_table_destroy (cli_table_t **self_p);

//  Adds the next cell, text as given (NULL: ""); rows fill left to right.
void
    cli_table_add (cli_table_t *self, const char *text);

//  The same, printf-style.
void
    cli_table_addf (cli_table_t *self, const char *format, ...)
    __attribute__ ((format (printf, 2, 3)));

//  How many columns it has.
size_t
    cli_table_columns (cli_table_t *self);

//  Prints the table on stdout (complete rows only).
void
    cli_table_print (cli_table_t *self);

//  Adds item's cells, one row, to table.
typedef void (cli_row_fn) (cli_table_t *table, const ProtobufCMessage *item);

//  item as JSON (NULL in a cli_list_t: ep_message_json, proto field names).
typedef json_t *(cli_json_fn) (const ProtobufCMessage *item);

//  How a command shows its items.
typedef struct {
    const char *const *header;  //  column titles
    size_t columns;             //  how many
    cli_row_fn *row;            //  one item's cells
    cli_json_fn *json;          //  one item's JSON, NULL for ep_message_json
} cli_list_t;

//  Prints items: a table, or with json a JSON array.
void
    cli_list_print (const cli_list_t *list, ProtobufCMessage *const *items, size_t count, bool json);

//  Prints one item: a one-row table, or with json a JSON object.
void
    cli_list_print_one (const cli_list_t *list, const ProtobufCMessage *item, bool json);

#endif
