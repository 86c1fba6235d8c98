

def test_generation_markers_are_recognised_as_trl_recognises_them():
    from inspector.core.data.conversations import has_generation_markers, without_markers

    marked = "{% for m in messages %}{% generation %}{{ m.content }}{%- endgeneration -%}{% endfor %}"
    assert has_generation_markers(marked)
    assert has_generation_markers(marked.replace("{% generation %}", "{%- generation -%}"))
    assert not has_generation_markers(without_markers(marked))
    assert not has_generation_markers("{# a template that talks about generation and endgeneration #}")
    assert not has_generation_markers(None)
