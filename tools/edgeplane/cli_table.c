/*  cli_table.c: how the CLI prints what a service returned (see cli_table.h). */
#include "cli_table.h"
#include "ep_event_json.h"
#include <stdarg.h>

struct _cli_table_t {
    const char *const *header;  //  column titles
    size_t columns;             //  how many
    zlistx_t *cells;            //  row after row, left to right (owned strings)
};

cli_table_t *
cli_table_new (const char *const *header, size_t columns)
{
    EP_ASSERT (header && columns > 0);
    cli_table_t *self = (cli_table_t *) zmalloc (sizeof (cli_table_t));
    self->header = header;
    self->columns = columns;
    self->cells = zlistx_new ();
    zlistx_set_destructor (self->cells, (czmq_destructor *) zstr_free);
    return self;
}

void
cli_table_destroy (cli_table_t **self_p)
{
    cli_table_t *self = *self_p;
    if (self) {
        zlistx_destroy (&self->cells);
        free (self);
        *self_p = NULL;
    }
}

void
cli_table_add (cli_table_t *self, const char *text)
{
    zlistx_add_end (self->cells, strdup (text? text: ""));
}

void
cli_table_addf (cli_table_t *self, const char *format, ...)
{
    va_list args;
    va_start (args, format);
    char *text = zsys_vprintf (format, args);
    va_end (args);
    zlistx_add_end (self->cells, text);
}

size_t
cli_table_columns (cli_table_t *self)
{
    return self->columns;
}

void
cli_table_print (cli_table_t *self)
{
    size_t rows = zlistx_size (self->cells) / self->columns;
    const char **cells = (const char **) calloc ((rows + 1) * self->columns, sizeof (char *));
    size_t *widths = (size_t *) calloc (self->columns, sizeof (size_t));
    for (size_t c = 0; c < self->columns; c++)
        cells [c] = self->header [c];
    size_t i = self->columns;
    for (const char *cell = (const char *) zlistx_first (self->cells); cell && i < (rows + 1) * self->columns;
         cell = (const char *) zlistx_next (self->cells))
        cells [i++] = cell;
    for (i = 0; i < (rows + 1) * self->columns; i++)
        if (strlen (cells [i]) > widths [i % self->columns])
            widths [i % self->columns] = strlen (cells [i]);
    for (size_t row = 0; row <= rows; row++)
        for (size_t c = 0; c < self->columns; c++) {
            const char *cell = cells [row * self->columns + c];
            if (c + 1 < self->columns)
                printf ("%-*s  ", (int) widths [c], cell);
            else
                printf ("%s\n", cell);
        }
    free (widths);
    free (cells);
}

static json_t *
s_json (const cli_list_t *list, const ProtobufCMessage *item)
{
    return list->json? list->json (item): ep_message_json (item);
}

void
cli_list_print (const cli_list_t *list, ProtobufCMessage *const *items, size_t count, bool json)
{
    if (json) {
        json_t *array = json_array ();
        for (size_t i = 0; i < count; i++)
            json_array_append_new (array, s_json (list, items [i]));
        cli_print_json (array);
        return;
    }
    cli_table_t *table = cli_table_new (list->header, list->columns);
    for (size_t i = 0; i < count; i++)
        list->row (table, items [i]);
    cli_table_print (table);
    cli_table_destroy (&table);
}

void
cli_list_print_one (const cli_list_t *list, const ProtobufCMessage *item, bool json)
{
    if (json)
        cli_print_json (s_json (list, item));
    else
        cli_list_print (list, (ProtobufCMessage *const *) &item, 1, false);
}
