/*  test_codec.c: capped packing and unpacking; hostile input gives errors. */
#include <criterion/criterion.h>
#include "ep_codec.h"
#include "model.pb-c.h"
#include <sodium.h>

static zframe_t *
s_sample (void)
{
    Ep__Router router = EP__ROUTER__INIT;
    router.id = "r1";
    router.name = "edge router one";
    router.has_enabled = true;
    router.enabled = true;
    Ep__Entity entity = EP__ENTITY__INIT;
    entity.kind_case = EP__ENTITY__KIND_ROUTER;
    entity.router = &router;
    Ep__ModelWrite write = EP__MODEL_WRITE__INIT;
    write.has_op = true;
    write.op = EP__MODEL_WRITE__OP__CREATE;
    write.entity = &entity;
    Ep__ModelRequest request = EP__MODEL_REQUEST__INIT;
    request.request_id = "req-1";
    request.op_case = EP__MODEL_REQUEST__OP_WRITE;
    request.write = &write;
    char err [256];
    return ep_codec_pack (&request.base, EP_CODEC_DEFAULT_CAP, err, sizeof err);
}

Test (codec, round_trip)
{
    zframe_t *frame = s_sample ();
    cr_assert_not_null (frame);
    char err [256];
    Ep__ModelRequest *request = (Ep__ModelRequest *) ep_codec_unpack_frame (
        &ep__model_request__descriptor, frame, 1024, "test", err, sizeof err);
    cr_assert_not_null (request, "%s", err);
    cr_assert_str_eq (request->request_id, "req-1");
    cr_assert_eq (request->op_case, EP__MODEL_REQUEST__OP_WRITE);
    cr_assert_str_eq (request->write->entity->router->name, "edge router one");
    ep__model_request__free_unpacked (request, NULL);
    zframe_destroy (&frame);
}

Test (codec, pack_refused_above_cap)
{
    Ep__Status status = EP__STATUS__INIT;
    char big [2000];
    memset (big, 'x', sizeof big - 1);
    big [sizeof big - 1] = 0;
    status.message = big;
    char err [256] = "";
    zframe_t *frame = ep_codec_pack (&status.base, 1000, err, sizeof err);
    cr_assert_null (frame);
    cr_assert (strstr (err, "ep.Status"), "%s", err);
    cr_assert (strstr (err, "exceeds the cap of 1000"), "%s", err);
}

Test (codec, oversized_input_refused_before_unpack)
{
    zframe_t *frame = s_sample ();
    char err [256] = "";
    size_t size = zframe_size (frame);
    void *msg = ep_codec_unpack_frame (&ep__model_request__descriptor, frame,
                                       size - 1, "tcp://10.0.0.9:4000", err, sizeof err);
    cr_assert_null (msg);
    //  The error names type, length and sender.
    cr_assert (strstr (err, "ep.ModelRequest"), "%s", err);
    cr_assert (strstr (err, "tcp://10.0.0.9:4000"), "%s", err);
    char expect [32];
    snprintf (expect, sizeof expect, "%zu bytes", size);
    cr_assert (strstr (err, expect), "%s", err);
    zframe_destroy (&frame);
}

Test (codec, every_truncation_is_an_error_or_a_valid_prefix)
{
    //  Cutting a message anywhere must never crash; cuts inside a field are
    //  errors naming the type.
    zframe_t *frame = s_sample ();
    size_t size = zframe_size (frame);
    size_t errors = 0;
    for (size_t cut = 1; cut < size; cut++) {
        char err [256] = "";
        Ep__ModelRequest *msg = (Ep__ModelRequest *) ep_codec_unpack (
            &ep__model_request__descriptor, zframe_data (frame), cut,
            EP_CODEC_DEFAULT_CAP, "peer", err, sizeof err);
        if (msg)
            ep__model_request__free_unpacked (msg, NULL);
        else {
            errors++;
            cr_assert (strstr (err, "ep.ModelRequest") && strstr (err, "peer"), "%s", err);
        }
    }
    cr_assert_gt (errors, size / 2);
    zframe_destroy (&frame);
}

Test (codec, garbage_gives_errors_not_crashes)
{
    cr_assert (sodium_init () >= 0);
    uint8_t buf [512];
    size_t rejected = 0;
    for (int round = 0; round < 2000; round++) {
        size_t len = randombytes_uniform (sizeof buf) + 1;
        randombytes_buf (buf, len);
        char err [256];
        ProtobufCMessage *msg = ep_codec_unpack (&ep__model_request__descriptor,
                                                 buf, len, sizeof buf, "fuzz", err, sizeof err);
        if (msg)
            protobuf_c_message_free_unpacked (msg, NULL);
        else
            rejected++;
    }
    cr_assert_gt (rejected, 1000);
}
